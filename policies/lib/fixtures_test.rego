# Building blocks for the policy unit tests: services shaped like the
# converter's output (Engine API ServiceSpec), and cluster facts.
package shoal.fixtures

cluster(nodes) := {
	"nodes": [{"id": sprintf("n%d", [i]), "hostname": sprintf("node%d", [i]), "role": role(i), "availability": "active", "state": "ready", "labels": {}, "engine_version": "20.10.24"} | some i in numbers.range(1, nodes)],
	"node_count": nodes,
	"manager_count": 1,
	"engine_versions": ["20.10.24"],
}

role(1) := "manager"

role(i) := "worker" if i > 1

# A replicated service of stack "st" named st_<short>; `spec` is merged
# (recursively) over the defaults.
service(short, image, spec) := {
	"name": sprintf("st_%s", [short]),
	"compose": {"image": image},
	"spec": object.union(
		{
			"Name": sprintf("st_%s", [short]),
			"Labels": {"com.docker.stack.namespace": "st", "com.docker.stack.image": image},
			"TaskTemplate": {
				"ContainerSpec": {"Image": image, "Labels": {"com.docker.stack.namespace": "st"}},
				"Networks": [{"Target": "st_default", "Aliases": [short]}],
			},
			"Mode": {"Replicated": {"Replicas": 1}},
		},
		spec,
	),
}

# An input document for stack "st" with `services` (a list) on `nodes` nodes.
stack(services, nodes) := {
	"stack": "st",
	"services": {s.name: s | some s in services},
	"networks": {},
	"configs": {},
	"secrets": {},
	"external": [],
	"cluster": cluster(nodes),
}

container(extra) := {"TaskTemplate": {"ContainerSpec": extra}}

replicas(n) := {"Mode": {"Replicated": {"Replicas": n}}}

stack_volume(name, target) := {
	"Type": "volume",
	"Source": sprintf("st_%s", [name]),
	"Target": target,
	"VolumeOptions": {"Labels": {"com.docker.stack.namespace": "st"}},
}

steedos_s3_env := [
	"MONGO_URL=mongodb://mongodb:27017/steedos",
	"STEEDOS_CFS_STORE=s3",
	"STEEDOS_CFS_AWS_S3_BUCKET=steedos-files",
	"STEEDOS_CFS_AWS_S3_REGION=us-east-1",
]

# The same service in global mode.
global(svc) := json.patch(svc, [{"op": "replace", "path": "/spec/Mode", "value": {"Global": {}}}])
