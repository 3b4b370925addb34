"""Peers of the patient-view load benchmark (benchmarks/bench_service.py): a request generator, a
trivial rule, a bare FastAPI "floor" app, a HealthChain app and a closed-loop load generator."""
