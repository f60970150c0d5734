package shoal.mongo_replica_set_test

import data.shoal.fixtures
import data.shoal.mongo_replica_set

steedos(url) := fixtures.service("steedos", "steedos/steedos-enterprise:2.7", fixtures.container({"Env": [sprintf("MONGO_URL=%s", [url])]}))

mongo(args) := fixtures.service("mongodb", "mongo:7.0", fixtures.container({"Args": args}))

# The seed's command: bash -c "<script>" (shell-split by the compose loader).
seed_script := `mongod --replSet steedos --bind_ip_all --quiet &
until mongosh --eval 'db.runCommand("ping").ok' --quiet | grep 1; do sleep 2; done;
mongosh --eval 'rs.initiate({_id: "steedos", members: [{_id: 0, host: "localhost:27017"}]})';
wait`

test_deny_mongo_without_repl_set if {
	doc := fixtures.stack([steedos("mongodb://mongodb:27017/steedos"), mongo(["mongod", "--bind_ip_all"])], 1)
	ds := mongo_replica_set.deny with input as doc
	some d in ds
	d.rule == "mongo_replica_set"
	d.service == "st_mongodb"
	contains(d.msg, "st_steedos")
	contains(d.msg, "--replSet")
}

test_deny_mongo_found_by_full_name_and_credentials if {
	doc := fixtures.stack([steedos("mongodb://user:p%40ss@st_mongodb:27017,other:27017/steedos?authSource=admin"), mongo([])], 1)
	{d.rule | some d in mongo_replica_set.deny} == {"mongo_replica_set"} with input as doc
}

test_deny_mongo_url_localhost if {
	doc := fixtures.stack([steedos("mongodb://localhost:27017/steedos")], 2)
	ds := mongo_replica_set.deny with input as doc
	some d in ds
	d.rule == "mongo_localhost"
	d.service == "st_steedos"
	contains(d.msg, "MONGO_URL pointing at localhost")
}

test_deny_mongo_url_loopback_ip if {
	doc := fixtures.stack([steedos("mongodb://127.0.0.1/steedos")], 1)
	count(mongo_replica_set.deny) == 1 with input as doc
}

test_deny_replica_set_initiated_with_localhost if {
	doc := fixtures.stack([steedos("mongodb://mongodb:27017/steedos"), mongo(["bash", "-c", seed_script])], 1)
	{[d.rule, d.service] | some d in mongo_replica_set.deny} == {["mongo_localhost", "st_mongodb"]} with input as doc
	ds := mongo_replica_set.deny with input as doc
	some d in ds
	contains(d.msg, `host: "mongodb:27017"`)
}

test_allow_replica_set_with_service_name if {
	script := replace(seed_script, "localhost:27017", "mongodb:27017")
	doc := fixtures.stack([steedos("mongodb://mongodb:27017/steedos?replicaSet=steedos"), mongo(["bash", "-c", script])], 2)
	count(mongo_replica_set.deny) == 0 with input as doc
}

test_allow_repl_set_in_args if {
	doc := fixtures.stack([steedos("mongodb://mongodb/steedos"), mongo(["--replSet", "rs0", "--bind_ip_all"])], 1)
	count(mongo_replica_set.deny) == 0 with input as doc
}

test_allow_external_database if {
	doc := fixtures.stack([steedos("mongodb+srv://cluster0.example.net/steedos")], 2)
	count(mongo_replica_set.deny) == 0 with input as doc
}

test_allow_non_steedos_client if {
	app := fixtures.service("app", "busybox:1.36", fixtures.container({"Env": ["MONGO_URL=mongodb://localhost/x"]}))
	doc := fixtures.stack([app, mongo([])], 1)
	count(mongo_replica_set.deny) == 0 with input as doc
}
