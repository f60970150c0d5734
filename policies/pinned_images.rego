# Pinned images: `:latest` or no tag means every node may run a different
# build, and a redeploy silently changes what runs.
package shoal.pinned_images


# The regular expression matches an image reference without a digest whose
# tag is missing or `latest`: the last path segment has no `:` (a registry
# port comes before a `/`).
warn contains {"rule": "pinned_images", "service": name, "msg": msg} if {
	some name, svc in input.services
	image := object.get(object.get(svc.spec, "Labels", {}), "com.docker.stack.image", svc.spec.TaskTemplate.ContainerSpec.Image)
	regex.match(`^([^@]*/)?[^/:@]+(:latest)?$`, image)
	msg := sprintf(
		"%s uses image %s, which is not pinned: nodes may run different builds and a redeploy can change what runs. Fix: use a version tag (image:1.2.3) or a digest (image@sha256:...).",
		[name, image],
	)
}
