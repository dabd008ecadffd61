"""The operator's `cpu` command and the local stack that `make up` and the tests run."""
