package shoal.sticky_sessions_test

import data.shoal.fixtures
import data.shoal.sticky_sessions

routed := {
	"traefik.enable": "true",
	"traefik.http.routers.steedos.rule": "PathPrefix(`/`)",
	"traefik.http.services.steedos.loadbalancer.server.port": "80",
}

steedos(labels, replicas) := fixtures.service("steedos", "steedos/steedos-enterprise:2.7", object.union({"Labels": labels}, fixtures.replicas(replicas)))

test_deny_two_replicas_without_sticky_cookie if {
	doc := fixtures.stack([steedos(routed, 2)], 2)
	ds := sticky_sessions.deny with input as doc
	some d in ds
	d.rule == "sticky_sessions"
	d.service == "st_steedos"
	contains(d.msg, "traefik.http.services.steedos.loadbalancer.sticky.cookie=true")
}

test_deny_sticky_cookie_false if {
	labels := object.union(routed, {"traefik.http.services.steedos.loadbalancer.sticky.cookie": "false"})
	doc := fixtures.stack([steedos(labels, 3)], 1)
	count(sticky_sessions.deny) == 1 with input as doc
}

test_deny_global_on_two_nodes if {
	svc := fixtures.global(fixtures.service("steedos", "steedos/steedos-community:2.7", {"Labels": routed}))
	doc := fixtures.stack([svc], 2)
	count(sticky_sessions.deny) == 1 with input as doc
}

test_allow_sticky_cookie_true if {
	labels := object.union(routed, {"traefik.http.services.steedos.loadbalancer.sticky.cookie": "true"})
	doc := fixtures.stack([steedos(labels, 2)], 2)
	count(sticky_sessions.deny) == 0 with input as doc
}

test_allow_sticky_cookie_name if {
	labels := object.union(routed, {"traefik.http.services.steedos.loadbalancer.sticky.cookie.name": "steedos_session"})
	doc := fixtures.stack([steedos(labels, 2)], 2)
	count(sticky_sessions.deny) == 0 with input as doc
}

test_allow_traefik_v1_sticky if {
	labels := {"traefik.enable": "true", "traefik.backend.loadbalancer.sticky": "true"}
	doc := fixtures.stack([steedos(labels, 2)], 2)
	count(sticky_sessions.deny) == 0 with input as doc
}

test_allow_single_replica if {
	doc := fixtures.stack([steedos(routed, 1)], 2)
	count(sticky_sessions.deny) == 0 with input as doc
}

test_allow_not_routed_by_traefik if {
	doc := fixtures.stack([steedos({}, 2)], 2)
	count(sticky_sessions.deny) == 0 with input as doc
}

test_allow_non_socketio_service if {
	svc := fixtures.service("web", "nginx:1.27", object.union({"Labels": routed}, fixtures.replicas(3)))
	doc := fixtures.stack([svc], 2)
	count(sticky_sessions.deny) == 0 with input as doc
}

test_warn_traefik_labels_on_containers if {
	svc := fixtures.service("steedos", "steedos/steedos-enterprise:2.7", fixtures.container({"Labels": routed}))
	doc := fixtures.stack([svc], 1)
	ws := sticky_sessions.warn with input as doc
	some w in ws
	w.rule == "traefik_deploy_labels"
	contains(w.msg, "deploy.labels")
}

test_allow_traefik_labels_on_service if {
	doc := fixtures.stack([steedos(object.union(routed, {"traefik.http.services.steedos.loadbalancer.sticky.cookie": "true"}), 2)], 2)
	count(sticky_sessions.warn) == 0 with input as doc
}
