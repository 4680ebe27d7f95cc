// Command etcd is etcd's server at the version k8s.io/kubernetes v1.37.2 pins (../go.mod), for
// .ci/kubecheck: the kube-apiserver there stores its objects in it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
