# Shared storage on multi-node swarms.
#
# A replicated service's tasks can run (and be rescheduled) on any node. A
# host bind mount or a local-driver volume exists on one node only, so
# files written on node A are missing when a task runs on node B. Steedos
# attachments in particular must go to S3/MinIO in a cluster.
package shoal.shared_storage

import data.shoal.lib

docker_sockets := {"/var/run/docker.sock", "/run/docker.sock"}

# Local-driver volume types that are in fact network filesystems.
network_filesystems := {"nfs", "nfs4", "cifs", "smb"}

s3_fix := "STEEDOS_CFS_STORE=S3, STEEDOS_CFS_AWS_S3_BUCKET=<bucket>, STEEDOS_CFS_AWS_S3_REGION=<region> (MinIO works too)"

# A description of a mount keeping data on one node, undefined otherwise.
node_local(m) := sprintf("bind mount %s -> %s", [m.Source, m.Target]) if {
	m.Type == "bind"
	not m.Source in docker_sockets
}

node_local(m) := sprintf("volume %s -> %s (driver %s)", [m.Source, m.Target, driver(m)]) if {
	m.Type == "volume"
	object.get(m, "Source", "") != ""
	not external(m)
	driver(m) == "local"
	not network_filesystem(m)
}

node_local(m) := sprintf("anonymous volume at %s", [m.Target]) if {
	m.Type == "volume"
	object.get(m, "Source", "") == ""
}

driver(m) := d if {
	d := object.get(m, ["VolumeOptions", "DriverConfig", "Name"], "")
	d != ""
} else := "local"

# An external volume: created outside the stack, driver unknown here, so
# it is not judged (the converter gives it no stack namespace label).
external(m) if not m.VolumeOptions.Labels["com.docker.stack.namespace"]

network_filesystem(m) if lower(m.VolumeOptions.DriverConfig.Options.type) in network_filesystems

fix(svc) := sprintf("store the files in S3/MinIO (%s)", [s3_fix]) if lib.is_steedos(svc)

fix(svc) := "use a volume driver shared by all nodes (NFS, a cloud or S3-backed plugin) or object storage" if not lib.is_steedos(svc)

deny contains {"rule": "shared_storage", "service": name, "msg": msg} if {
	lib.multi_node
	some name, svc in input.services
	lib.is_replicated(svc)
	not lib.pinned(svc)
	some m in lib.mounts(svc)
	where := node_local(m)
	msg := sprintf(
		"%s keeps data in %s, which exists on one node only; on this %d-node swarm its tasks can run elsewhere and not see the files. Fix: %s, or pin the service to one node (deploy.placement.constraints: [node.hostname==<node>]).",
		[name, where, input.cluster.node_count, fix(svc)],
	)
}

# Steedos keeps attachments (cfs) on local disk unless told to use S3:
# the settings still missing.
missing_s3(svc) := [setting |
	some setting in ["STEEDOS_CFS_STORE=S3", "STEEDOS_CFS_AWS_S3_BUCKET", "STEEDOS_CFS_AWS_S3_REGION"]
	not has_setting(svc, setting)
]

has_setting(svc, setting) if {
	setting == "STEEDOS_CFS_STORE=S3"
	some v in lib.env_values(svc, "STEEDOS_CFS_STORE")
	lower(trim_space(v)) == "s3"
}

has_setting(svc, setting) if {
	setting != "STEEDOS_CFS_STORE=S3"
	lib.env_set(svc, setting)
}

deny contains {"rule": "steedos_s3", "service": name, "msg": msg} if {
	lib.multi_node
	some name, svc in input.services
	lib.is_steedos(svc)
	not lib.pinned(svc)
	missing := missing_s3(svc)
	count(missing) > 0
	msg := sprintf(
		"%s stores attachments on local disk, so files uploaded through one replica are missing on the others on this %d-node swarm; missing environment: %s. Fix: %s.",
		[name, input.cluster.node_count, concat(", ", missing), s3_fix],
	)
}
