"""Running the program without the Pulumi CLI: the mock-runtime runner, the stack-file reader,
the offline TLS provider, the step executor and the quick start."""
