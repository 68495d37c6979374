"""protoc output for the remote_write and Loki doors (regenerate from the .proto files)."""
