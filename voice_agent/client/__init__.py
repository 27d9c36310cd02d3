"""Client library for the project's gRPC services (used by the CLI, tests and benchmarks)."""
