package shoal.guard_rails_test

import data.shoal.fixtures
import data.shoal.guard_rails

# ---- external configs and secrets ------------------------------------------

# Stack `stack` with service `app` mounting external secret `secret` (and
# deploy labels `labels`).
with_secret(stack, secret, labels) := {
	"stack": stack,
	"services": {sprintf("%s_app", [stack]): {
		"name": sprintf("%s_app", [stack]),
		"compose": {"image": "nginx:1.27"},
		"spec": {
			"Name": sprintf("%s_app", [stack]),
			"Labels": object.union({"com.docker.stack.namespace": stack}, labels),
			"TaskTemplate": {"ContainerSpec": {
				"Image": "nginx:1.27",
				"Secrets": [{"SecretName": secret, "File": {"Name": secret, "UID": "0", "GID": "0", "Mode": 292}}],
			}},
		},
	}},
	"networks": {},
	"configs": {},
	"secrets": {},
	"external": [{"kind": "secret", "name": secret}],
	"cluster": fixtures.cluster(1),
}

denied_rules(doc) := {[d.rule, d.service] | some d in guard_rails.deny with input as doc}

test_deny_evil_stack_mounting_the_agent_key if {
	ds := guard_rails.deny with input as with_secret("evil", "shoal_git_ssh_key", {})
	count(ds) == 1
	some d in ds
	d.rule == "external_objects"
	d.service == "evil_app"
	contains(d.msg, "service evil_app of stack evil")
	contains(d.msg, "secret shoal_git_ssh_key")
	contains(d.msg, `shoal.allow-external: "shoal_git_ssh_key"`)
}

test_deny_external_config_not_owned if {
	doc := json.patch(with_secret("evil", "unused", {}), [
		{"op": "replace", "path": "/external", "value": [{"kind": "config", "name": "shoal_known_hosts"}]},
		{"op": "add", "path": "/services/evil_app/spec/TaskTemplate/ContainerSpec/Configs", "value": [{"ConfigName": "shoal_known_hosts", "File": {"Name": "/etc/x"}}]},
	])
	denied_rules(doc) == {["external_objects", "evil_app"]}
}

test_deny_credential_spec_config_not_owned if {
	doc := json.patch(with_secret("evil", "unused", {}), [
		{"op": "replace", "path": "/external", "value": [{"kind": "config", "name": "shoal_known_hosts"}]},
		{"op": "add", "path": "/services/evil_app/spec/TaskTemplate/ContainerSpec/Privileges", "value": {"CredentialSpec": {"Config": "shoal_known_hosts"}}},
	])
	denied_rules(doc) == {["external_objects", "evil_app"]}
}

# A prefix of the name is not ownership: stack `shoa` does not own `shoal_x`.
test_deny_prefix_without_separator if {
	denied_rules(with_secret("shoa", "shoal_git_ssh_key", {})) == {["external_objects", "shoa_app"]}
}

# Allowing another name does not allow this one.
test_deny_other_name_allowed if {
	denied_rules(with_secret("evil", "shoal_git_ssh_key", {"shoal.allow-external": "shoal_webhook_secret"})) == {["external_objects", "evil_app"]}
}

test_allow_stack_shoal_mounting_its_own if {
	count(guard_rails.deny) == 0 with input as with_secret("shoal", "shoal_git_ssh_key", {})
}

test_allow_external_allowed_by_name if {
	doc := with_secret("web", "tls_cert", {"shoal.allow-external": "other, tls_cert"})
	count(guard_rails.deny) == 0 with input as doc
}

# Objects the stack creates are not external: not judged here.
test_allow_stack_created_secret if {
	doc := json.patch(with_secret("web", "web_key", {}), [{"op": "replace", "path": "/external", "value": []}])
	count(guard_rails.deny) == 0 with input as doc
}

# ---- the Docker socket -----------------------------------------------------

with_mounts(mounts, labels) := fixtures.stack(
	[fixtures.service("agent", "busybox:1.36", {
		"Labels": object.union({"com.docker.stack.namespace": "st"}, labels),
		"TaskTemplate": {"ContainerSpec": {"Image": "busybox:1.36", "Mounts": mounts}},
	})],
	1,
)

bind(source) := {"Type": "bind", "Source": source, "Target": "/mnt"}

socket_denied(source) if {
	ds := guard_rails.deny with input as with_mounts([bind(source)], {})
	some d in ds
	d.rule == "docker_socket"
	d.service == "st_agent"
}

test_deny_socket_bind if {
	ds := guard_rails.deny with input as with_mounts([bind("/var/run/docker.sock")], {})
	count(ds) == 1
	some d in ds
	d.rule == "docker_socket"
	contains(d.msg, "service st_agent of stack st")
	contains(d.msg, "/var/run/docker.sock")
	contains(d.msg, `shoal.allow-docker-socket: "true"`)
}

test_deny_socket_under_run if socket_denied("/run/docker.sock")

test_deny_var_run_directory if socket_denied("/var/run")

test_deny_run_directory if socket_denied("/run/")

test_deny_root_directory if socket_denied("/")

test_deny_var_directory if socket_denied("/var")

# Spellings docker cleans to the same path.
test_deny_unclean_spellings if {
	socket_denied("//var/./run//docker.sock")
	socket_denied("/srv/../var/run")
	socket_denied("/../../run")
	socket_denied("/srv/a/../../")
}

# A `local` volume with `o: bind` mounts its device from the host.
test_deny_local_bind_volume if {
	m := {
		"Type": "volume", "Source": "st_sock", "Target": "/mnt",
		"VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/var/run"}}},
	}
	ds := guard_rails.deny with input as with_mounts([m], {})
	some d in ds
	d.rule == "docker_socket"
}

test_deny_label_not_true if {
	ds := guard_rails.deny with input as with_mounts([bind("/var/run/docker.sock")], {"shoal.allow-docker-socket": "yes"})
	count(ds) == 1
}

test_allow_socket_with_label if {
	doc := with_mounts([bind("/var/run/docker.sock")], {"shoal.allow-docker-socket": "true"})
	count(guard_rails.deny) == 0 with input as doc
}

test_allow_other_host_paths if {
	doc := with_mounts(
		[
			bind("/var/run/other.sock"), bind("/run/user/1000/data"), bind("/srv/run"),
			bind("/var/lib/app"), bind("/runner"), bind("/srv/../srv/data"),
			{"Type": "volume", "Source": "st_data", "Target": "/data"},
			{"Type": "tmpfs", "Target": "/tmp"},
		],
		{},
	)
	count(guard_rails.deny) == 0 with input as doc
}
