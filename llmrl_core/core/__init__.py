"""What every feature shares: errors, the workbench home and its paths, the security policy,
the sandbox for user code, pre-flight resource checks and the config base class."""
