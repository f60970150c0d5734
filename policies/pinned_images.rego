# Pinned images: `:latest` or no tag means every node may run a different
# build, and a redeploy silently changes what runs.
package shoal.pinned_images

import data.shoal.lib

# The tag of an image reference, "" when there is none. A digest pins.
tag(ref) := "@digest" if contains(ref, "@")

tag(ref) := t if {
	not contains(ref, "@")
	parts := split(ref, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	segs := split(last, ":")
	t := segs[count(segs) - 1]
}

tag(ref) := "" if {
	not contains(ref, "@")
	parts := split(ref, "/")
	not contains(parts[count(parts) - 1], ":")
}

warn contains {"rule": "pinned_images", "service": name, "msg": msg} if {
	some name, svc in input.services
	image := lib.image(svc)
	image != ""
	tag(image) in {"", "latest"}
	msg := sprintf(
		"%s uses image %s, which is not pinned: nodes may run different builds and a redeploy can change what runs. Fix: use a version tag (image:1.2.3) or a digest (image@sha256:...).",
		[name, image],
	)
}
