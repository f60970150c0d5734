# Guard rails for the agent's own credentials and for the manager.
#
# The agent runs beside the Docker socket with its git key and webhook
# secret mounted as Swarm secrets (`shoal_git_ssh_key`,
# `shoal_webhook_secret`, ... in stack `shoal`). Anyone who can push a
# stack could otherwise mount those by name (`external: true`) or bind the
# Docker socket (root on the manager). Both are denied unless the stack
# file says so explicitly, on the service, where a reviewer sees it:
#
#   deploy:
#     labels:
#       shoal.allow-external: "traefik_tls_cert,shared_ca"
#       shoal.allow-docker-socket: "true"
#
# These are guard rails, not enforcement: the allow labels, the
# `shoal.policy.skip` label and this file itself are all in the same
# repository as the stacks (see policies/README.md, "Trust model").
package shoal.guard_rails

import data.shoal.lib

allow_external_label := "shoal.allow-external"

allow_socket_label := "shoal.allow-docker-socket"

# ---- external configs and secrets ------------------------------------------

# External configs and secrets the stack references, by kind.
external_names(kind) := {e.name | some e in input.external; e.kind == kind}

# A stack owns what docker names with its namespace prefix: `<stack>_...`
# (stack `shoal` owns `shoal_git_ssh_key`).
owned(name) if startswith(name, concat("", [input.stack, "_"]))

# Names a service allows by label: `shoal.allow-external: "a, b"`.
allowed_external(svc) := {trim_space(n) |
	some n in split(object.get(lib.service_labels(svc), allow_external_label, ""), ",")
	trim_space(n) != ""
}

# (kind, name) of every external config or secret a service mounts,
# including a credential spec's config.
mounted_external(svc) := {[kind, ref.SecretName] |
	kind := "secret"
	some ref in object.get(lib.container(svc), "Secrets", [])
	ref.SecretName in external_names("secret")
} | {[kind, ref.ConfigName] |
	kind := "config"
	some ref in object.get(lib.container(svc), "Configs", [])
	ref.ConfigName in external_names("config")
} | {["config", name] |
	name := lib.container(svc).Privileges.CredentialSpec.Config
	name in external_names("config")
}

deny contains {"rule": "external_objects", "service": name, "msg": msg} if {
	count(input.external) > 0
	some name, svc in input.services
	some ref in mounted_external(svc)
	[kind, object_name] := ref
	not owned(object_name)
	not object_name in allowed_external(svc)
	msg := sprintf(
		"service %s of stack %s mounts external %s %s, which stack %s does not own (it owns %ss named %s_*); another stack's or the agent's credentials must not be readable by every stack writer. Fix: if this is intended, allow it by name on the service: deploy.labels: {%s: \"%s\"}.",
		[name, input.stack, kind, object_name, input.stack, kind, input.stack, allow_external_label, object_name],
	)
}

# ---- the Docker socket -----------------------------------------------------

# A path cleaned as docker cleans a bind source (Go's path.Clean): empty
# and `.` segments dropped, `..` removing the segment before it.
clean_path(p) := concat("", ["/", concat("/", kept)]) if {
	segs := [s | some s in split(p, "/"); not s in {"", "."}]
	kept := [s | some i, s in segs; s != ".."; not popped(segs, i)]
}

# Segment i is removed by a later `..`: somewhere after it the `..`s
# outnumber the other segments.
popped(segs, i) if {
	some j in numbers.range(i + 1, count(segs) - 1)
	j > i
	ups := count([k | some k in numbers.range(i + 1, j); segs[k] == ".."])
	ups > (j - i) - ups
}

# Host paths that expose the socket: the socket itself or a folder
# holding it.
exposing_paths := {"/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/var", "/"}

# A path as written is compared directly; only one docker would clean
# (`//`, `/./`, `/../`, a trailing `/`) takes the slower way through
# clean_path (policies are evaluated per stack on every plan: keep the
# common case cheap).
exposes_socket(path) if path in exposing_paths

exposes_socket(path) if {
	not canonical(path)
	clean_path(path) in exposing_paths
}

canonical(path) if {
	not contains(path, "//")
	not contains(path, "/.")
	not endswith(path, "/")
}

# Mounts putting a host path in the container, as [service, host path,
# target]: a bind source, or the device of a `local` volume with `o: bind`
# (the driver bind-mounts it).
host_mounts contains [name, m.Source, m.Target] if {
	some name, svc in input.services
	some m in svc.spec.TaskTemplate.ContainerSpec.Mounts
	m.Type == "bind"
}

host_mounts contains [name, device, m.Target] if {
	some name, svc in input.services
	some m in svc.spec.TaskTemplate.ContainerSpec.Mounts
	m.Type == "volume"
	device := m.VolumeOptions.DriverConfig.Options.device
	"bind" in {trim_space(o) | some o in split(object.get(m.VolumeOptions.DriverConfig.Options, "o", ""), ",")}
}

socket_allowed(svc) if lib.service_labels(svc)[allow_socket_label] == "true"

deny contains {"rule": "docker_socket", "service": name, "msg": msg} if {
	some [name, path, target] in host_mounts
	exposes_socket(path)
	not socket_allowed(input.services[name])
	msg := sprintf(
		"service %s of stack %s mounts host path %s at %s, which exposes the Docker socket (root on this manager). Fix: if this service must drive Docker (a proxy, an agent), allow it on the service: deploy.labels: {%s: \"true\"}.",
		[name, input.stack, path, target, allow_socket_label],
	)
}
