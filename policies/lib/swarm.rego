# Helpers shared by the shipped policies: reading the desired ServiceSpec
# (input.services[name].spec, Engine API shape) and the cluster facts.
package shoal.lib

# The container part of a service spec.
container(svc) := object.get(svc, ["spec", "TaskTemplate", "ContainerSpec"], {})

# Service labels (compose deploy.labels): what Traefik reads in swarm mode.
service_labels(svc) := object.get(svc, ["spec", "Labels"], {})

# Container labels (compose labels).
container_labels(svc) := object.get(container(svc), "Labels", {})

# The image as written in the stack file (the converter keeps it in the
# com.docker.stack.image label; the spec image may carry a digest).
image(svc) := object.get(service_labels(svc), "com.docker.stack.image", object.get(container(svc), "Image", ""))

# The compose name of a service: its full name without "<stack>_".
short_name(name) := trim_prefix(name, concat("", [input.stack, "_"]))

# Steedos (image steedos/steedos-community, steedos/steedos-enterprise...).
is_steedos(svc) if contains(lower(image(svc)), "steedos")

# Values of an environment variable (a set: Env is a list of K=V and
# nothing stops a name from repeating).
env_values(svc, key) := {v |
	some entry in object.get(container(svc), "Env", [])
	startswith(entry, concat("", [key, "="]))
	v := substring(entry, count(key) + 1, -1)
}

# Env names set to a non-empty value.
env_set(svc, key) if {
	some v in env_values(svc, key)
	trim_space(v) != ""
}

# The command line (entrypoint override and args) as one string.
command_line(svc) := concat(" ", array.concat(object.get(container(svc), "Command", []), object.get(container(svc), "Args", [])))

is_global(svc) if svc.spec.Mode.Global
is_global(svc) if svc.spec.Mode.GlobalJob

is_replicated(svc) if not is_global(svc)

# Tasks the service runs: its replicas, or one per node when global.
task_count(svc) := n if {
	is_replicated(svc)
	n := object.get(svc, ["spec", "Mode", "Replicated", "Replicas"], 1)
}

task_count(svc) := input.cluster.node_count if is_global(svc)

multi_node if input.cluster.node_count > 1

constraints(svc) := object.get(svc, ["spec", "TaskTemplate", "Placement", "Constraints"], [])

# Placement keeps every task on one node: node.hostname== or node.id==, or
# node.role==manager while there is a single manager.
pinned(svc) if {
	some c in constraints(svc)
	regex.match(`^\s*node\.(hostname|id)\s*==\s*\S+\s*$`, c)
}

pinned(svc) if {
	input.cluster.manager_count == 1
	some c in constraints(svc)
	regex.match(`^\s*node\.role\s*==\s*manager\s*$`, c)
}

mounts(svc) := object.get(container(svc), "Mounts", [])

# Services this service can reach as `host` on the stack's networks: by
# compose name, full name or network alias.
services_named(host) := {name |
	some name, svc in input.services
	host in names_of(name, svc)
}

names_of(name, svc) := {n |
	some n in array.concat([name, short_name(name)], aliases(svc))
}

aliases(svc) := [a |
	some net in object.get(svc, ["spec", "TaskTemplate", "Networks"], [])
	some a in object.get(net, "Aliases", [])
]
