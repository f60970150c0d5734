# Sticky sessions for Socket.io behind Traefik.
#
# Steedos pushes updates over Socket.io (WebSocket with a multi-request
# handshake). With more than one replica behind Traefik, requests of one
# handshake land on different replicas and the connection drops unless
# Traefik pins each browser to one replica with a sticky cookie.
package shoal.sticky_sessions

import data.shoal.lib

traefik_enabled(labels) if lower(labels["traefik.enable"]) == "true"

# Traefik v2/v3: sticky.cookie=true, or any sticky.cookie.<option> (name,
# secure, httpOnly...) which enables it as well.
sticky(labels) if {
	some key, value in labels
	regex.match(`^traefik\.http\.services\.[^.]+\.loadbalancer\.sticky\.cookie$`, key)
	lower(value) == "true"
}

sticky(labels) if {
	some key, _ in labels
	regex.match(`^traefik\.http\.services\.[^.]+\.loadbalancer\.sticky\.cookie\.[A-Za-z]+$`, key)
}

# Traefik v1.
sticky(labels) if {
	some key in {"traefik.backend.loadbalancer.sticky", "traefik.backend.loadbalancer.stickiness"}
	lower(labels[key]) == "true"
}

# The Traefik service name the labels already use, else the compose name.
lb_service(name, labels) := s if {
	some key, _ in labels
	parts := regex.find_all_string_submatch_n(`^traefik\.http\.services\.([^.]+)\.`, key, 1)
	s := parts[0][1]
} else := lib.short_name(name)

deny contains {"rule": "sticky_sessions", "service": name, "msg": msg} if {
	some name, svc in input.services
	lib.is_steedos(svc)
	labels := lib.service_labels(svc)
	traefik_enabled(labels)
	tasks := lib.task_count(svc)
	tasks > 1
	not sticky(labels)
	msg := sprintf(
		"%s runs %d tasks behind Traefik without a sticky cookie: Socket.io handshakes reach different replicas and connections drop. Fix: add deploy label traefik.http.services.%s.loadbalancer.sticky.cookie=true (and .sticky.cookie.name=steedos_session).",
		[name, tasks, lb_service(name, labels)],
	)
}

# In swarm mode Traefik reads service labels (deploy.labels) only; Traefik
# labels on the containers (compose `labels:`) are ignored and the service
# is not routed at all.
warn contains {"rule": "traefik_deploy_labels", "service": name, "msg": msg} if {
	some name, svc in input.services
	traefik_enabled(lib.container_labels(svc))
	not traefik_enabled(lib.service_labels(svc))
	msg := sprintf(
		"%s has traefik.* labels under `labels:` (container labels), which Traefik ignores in swarm mode; move them under `deploy.labels:`.",
		[name],
	)
}
