# Helpers shared by the shipped policies: reading the desired ServiceSpec
# (input.services[name].spec, Engine API shape) and the cluster facts.
package shoal.lib

# The container part of a service spec.
container(svc) := object.get(svc, ["spec", "TaskTemplate", "ContainerSpec"], {})

# Service labels (compose deploy.labels): what Traefik reads in swarm mode.
service_labels(svc) := object.get(svc, ["spec", "Labels"], {})

# The compose name of a service: its full name without "<stack>_".
short_name(name) := trim_prefix(name, concat("", [input.stack, "_"]))

# Names of the Steedos services: image steedos/steedos-community,
# steedos/steedos-enterprise... (computed once per evaluation: policies
# start from this set rather than testing every service).
steedos_services := {name |
	some name, svc in input.services
	contains(lower(svc.spec.TaskTemplate.ContainerSpec.Image), "steedos")
}

# Values of an environment variable (a set: Env is a list of K=V and
# nothing stops a name from repeating).
env_values(svc, key) := {v |
	prefix := concat("", [key, "="])
	some entry in svc.spec.TaskTemplate.ContainerSpec.Env
	startswith(entry, prefix)
	v := substring(entry, count(prefix), -1)
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

# Placement keeps every task on one node: node.hostname== or node.id==, or
# node.role==manager while there is a single manager.
pinned(svc) if {
	some c in svc.spec.TaskTemplate.Placement.Constraints
	regex.match(`^\s*node\.(hostname|id)\s*==\s*\S+\s*$`, c)
}

pinned(svc) if {
	input.cluster.manager_count == 1
	some c in svc.spec.TaskTemplate.Placement.Constraints
	regex.match(`^\s*node\.role\s*==\s*manager\s*$`, c)
}

# Services reachable as `host` on the stack's networks: by full name,
# compose name or network alias. (Inline loops, no per-service function
# calls: this runs for every MONGO_URL host.)
services_named(host) := {name |
	some name in [host, concat("", [input.stack, "_", host])]
	input.services[name]
} | {name |
	some name, svc in input.services
	some net in svc.spec.TaskTemplate.Networks
	host in net.Aliases
}
