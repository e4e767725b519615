"""The pod network: CNI, kube-proxy rules, network policy and the network faults."""
