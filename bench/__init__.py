"""Benchmarks that drive a real `porchlight serve` process (see bench/README.md)."""
