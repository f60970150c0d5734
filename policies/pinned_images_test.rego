package shoal.pinned_images_test

import data.shoal.fixtures
import data.shoal.pinned_images

warned(image) := {w.service | some w in ws} if {
	ws := pinned_images.warn with input as fixtures.stack([fixtures.service("web", image, {})], 1)
}

test_warn_latest_tag if {
	warned("nginx:latest") == {"st_web"}
	ws := pinned_images.warn with input as fixtures.stack([fixtures.service("web", "nginx:latest", {})], 1)
	some w in ws
	w.rule == "pinned_images"
	contains(w.msg, "nginx:latest")
}

test_warn_untagged if warned("steedos/steedos-community") == {"st_web"}

test_warn_untagged_with_registry_port if warned("registry.local:5000/team/app") == {"st_web"}

test_allow_version_tag if count(warned("nginx:1.27")) == 0

test_allow_registry_port_and_tag if count(warned("registry.local:5000/team/app:2.7")) == 0

test_allow_digest if count(warned("nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31")) == 0
