"""What every stage shares: the runner (plan → tasks → commit), resources, markers, the digest, Ray."""
