# The benchmark stack, the same for scripts/bench.sh and
# scripts/bench-remote.sh so their figures compare: `bench_stack DIR N`
# writes DIR/stack.yml with N busybox services at 0 replicas.
bench_stack() {
  local dir=$1 n=$2 i
  mkdir -p "$dir"
  {
    echo 'version: "3.8"'
    echo 'services:'
    for i in $(seq 1 "$n"); do
      cat <<SVC
  s$i:
    image: busybox:1.36
    command: ["sleep", "86400"]
    environment:
      INDEX: "$i"
    deploy:
      replicas: 0
      labels:
        bench: "yes"
SVC
    done
  } >"$dir/stack.yml"
}
