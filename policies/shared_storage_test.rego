package shoal.shared_storage_test

import data.shoal.fixtures
import data.shoal.shared_storage

bind_mount := {"Type": "bind", "Source": "/srv/stacks/st/steedos-storage", "Target": "/steedos-storage"}

web(spec) := fixtures.service("web", "nginx:1.27", spec)

steedos(spec) := fixtures.service("steedos", "steedos/steedos-enterprise:2.7", spec)

rules_for(input_doc) := {[d.rule, d.service] | some d in ds} if {
	ds := shared_storage.deny with input as input_doc
}

test_deny_bind_mount_on_two_nodes if {
	doc := fixtures.stack([web(fixtures.container({"Mounts": [bind_mount]}))], 2)
	ds := shared_storage.deny with input as doc
	some d in ds
	d.rule == "shared_storage"
	d.service == "st_web"
	contains(d.msg, "bind mount /srv/stacks/st/steedos-storage -> /steedos-storage")
	contains(d.msg, "node.hostname==")
}

test_deny_default_driver_volume if {
	doc := fixtures.stack([web(fixtures.container({"Mounts": [fixtures.stack_volume("data", "/data")]}))], 3)
	rules_for(doc) == {["shared_storage", "st_web"]}
}

test_deny_explicit_local_driver_volume if {
	m := object.union(fixtures.stack_volume("data", "/data"), {"VolumeOptions": {"DriverConfig": {"Name": "local"}}})
	doc := fixtures.stack([web(fixtures.container({"Mounts": [m]}))], 2)
	rules_for(doc) == {["shared_storage", "st_web"]}
}

test_deny_anonymous_volume if {
	doc := fixtures.stack([web(fixtures.container({"Mounts": [{"Type": "volume", "Target": "/cache"}]}))], 2)
	ds := shared_storage.deny with input as doc
	some d in ds
	contains(d.msg, "anonymous volume at /cache")
}

test_deny_steedos_without_s3 if {
	doc := fixtures.stack([steedos(fixtures.container({"Env": ["MONGO_URL=mongodb://mongodb:27017/steedos"]}))], 2)
	ds := shared_storage.deny with input as doc
	some d in ds
	d.rule == "steedos_s3"
	d.service == "st_steedos"
	contains(d.msg, "STEEDOS_CFS_STORE=S3, STEEDOS_CFS_AWS_S3_BUCKET, STEEDOS_CFS_AWS_S3_REGION")
}

test_deny_steedos_bind_mount_names_s3_fix if {
	doc := fixtures.stack([steedos(fixtures.container({"Env": fixtures.steedos_s3_env, "Mounts": [bind_mount]}))], 2)
	rules_for(doc) == {["shared_storage", "st_steedos"]}
	ds := shared_storage.deny with input as doc
	some d in ds
	contains(d.msg, "S3/MinIO")
}

test_deny_steedos_bucket_without_region if {
	env := ["STEEDOS_CFS_STORE=S3", "STEEDOS_CFS_AWS_S3_BUCKET=b"]
	doc := fixtures.stack([steedos(fixtures.container({"Env": env}))], 2)
	ds := shared_storage.deny with input as doc
	some d in ds
	endswith(split(d.msg, "missing environment: ")[1], "STEEDOS_CFS_AWS_S3_REGION. Fix: STEEDOS_CFS_STORE=S3, STEEDOS_CFS_AWS_S3_BUCKET=<bucket>, STEEDOS_CFS_AWS_S3_REGION=<region> (MinIO works too).")
}

test_allow_single_node if {
	doc := fixtures.stack([steedos(fixtures.container({"Mounts": [bind_mount]}))], 1)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_pinned_to_hostname if {
	spec := object.union(fixtures.container({"Mounts": [bind_mount]}), {"TaskTemplate": {"Placement": {"Constraints": ["node.hostname == node1"]}}})
	doc := fixtures.stack([steedos(spec)], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_pinned_to_single_manager if {
	spec := object.union(fixtures.container({"Mounts": [fixtures.stack_volume("db", "/data/db")]}), {"TaskTemplate": {"Placement": {"Constraints": ["node.role==manager"]}}})
	doc := fixtures.stack([web(spec)], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_docker_socket if {
	sock := {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock", "ReadOnly": true}
	doc := fixtures.stack([web(fixtures.container({"Mounts": [sock]}))], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_nfs_volume_with_local_driver if {
	m := object.union(fixtures.stack_volume("files", "/files"), {"VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "nfs", "o": "addr=10.0.0.5,rw", "device": ":/exports/files"}}}})
	doc := fixtures.stack([web(fixtures.container({"Mounts": [m]}))], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_shared_volume_driver if {
	m := object.union(fixtures.stack_volume("files", "/files"), {"VolumeOptions": {"DriverConfig": {"Name": "rexray/s3fs"}}})
	doc := fixtures.stack([web(fixtures.container({"Mounts": [m]}))], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_external_volume if {
	m := {"Type": "volume", "Source": "shared-files", "Target": "/files", "VolumeOptions": {}}
	doc := fixtures.stack([web(fixtures.container({"Mounts": [m]}))], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_global_service if {
	doc := fixtures.stack([fixtures.global(web(fixtures.container({"Mounts": [bind_mount]})))], 2)
	count(shared_storage.deny) == 0 with input as doc
}

test_allow_steedos_with_s3_lowercase if {
	doc := fixtures.stack([steedos(fixtures.container({"Env": fixtures.steedos_s3_env}))], 2)
	count(shared_storage.deny) == 0 with input as doc
}
