# MongoDB replica set for Steedos.
#
# Steedos follows changes through the MongoDB oplog, which only exists when
# mongod runs as a replica set. Members must be addressed by a name other
# containers resolve: "localhost" inside a container is that container.
package shoal.mongo_replica_set

import data.shoal.lib

loopback(host) if lower(host) in {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}

loopback(host) if startswith(host, "127.")

# Hosts of a mongodb:// or mongodb+srv:// URL (credentials, port, database
# and options removed).
url_hosts(url) := {host_of(hp) |
	rest := trim_prefix(trim_prefix(trim_space(url), "mongodb+srv://"), "mongodb://")
	authority := split(split(rest, "/")[0], "?")[0]
	parts := split(authority, "@")
	some hp in split(parts[count(parts) - 1], ",")
	hp != ""
}

host_of(hp) := h if {
	startswith(hp, "[")
	h := substring(hp, 0, indexof(hp, "]") + 1)
} else := split(hp, ":")[0]

mongo_urls(svc) := lib.env_values(svc, "MONGO_URL")

deny contains {"rule": "mongo_localhost", "service": name, "msg": msg} if {
	some name, svc in input.services
	lib.is_steedos(svc)
	some url in mongo_urls(svc)
	some host in url_hosts(url)
	loopback(host)
	msg := sprintf(
		"%s has MONGO_URL pointing at %s, which inside its container is the container itself. Fix: use the MongoDB service name, e.g. MONGO_URL=mongodb://mongodb:27017/steedos?replicaSet=rs0.",
		[name, host],
	)
}

replica_set(svc) if contains(lib.command_line(svc), "--replSet")

replica_set(svc) if contains(lib.command_line(svc), "replSetName")

deny contains {"rule": "mongo_replica_set", "service": mongo, "msg": msg} if {
	some name, svc in input.services
	lib.is_steedos(svc)
	some url in mongo_urls(svc)
	some host in url_hosts(url)
	some mongo in lib.services_named(host)
	not replica_set(input.services[mongo])
	msg := sprintf(
		"%s (the MONGO_URL of %s) runs mongod without --replSet, so there is no oplog and Steedos gets no live updates. Fix: start it with `mongod --replSet rs0 --bind_ip_all` and initiate the set with the service name as member host (rs.initiate({_id: \"rs0\", members: [{_id: 0, host: \"%s:27017\"}]})).",
		[mongo, name, host],
	)
}

# rs.initiate(...) in a command line naming a loopback member host.
deny contains {"rule": "mongo_localhost", "service": name, "msg": msg} if {
	some name, svc in input.services
	line := lib.command_line(svc)
	contains(line, "rs.initiate")
	found := regex.find_all_string_submatch_n(`host\s*:\s*\\?["']?(localhost|127\.0\.0\.1|\[::1\])`, line, -1)
	count(found) > 0
	msg := sprintf(
		"%s initiates its replica set with member host %s: clients that discover the set are sent to their own container and fail. Fix: use the service name, e.g. rs.initiate({_id: \"rs0\", members: [{_id: 0, host: \"%s:27017\"}]}).",
		[name, found[0][1], lib.short_name(name)],
	)
}
