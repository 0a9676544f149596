"""Benchmarks and the soak test of the gateway (`make bench`, `make soak`); never deployed."""
