"""Protobuf request bodies (`application/vnd.kubernetes.protobuf`), read into JSON form.

kubectl's typed clients send built-in kinds as protobuf. The schema is upstream's own:
the `generated.proto` and `types.go` files vendored in `schemas/kubernetes-protobuf/`
(`protofile` parses the first, `gostructs` the JSON shape of the second, `wire` reads
the bytes, `tojson` joins them, `body` unwraps the `k8s\\x00` + runtime.Unknown
envelope).
"""
