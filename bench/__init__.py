"""Benchmarks: each ``bench/bench_<area>.py`` exposes ``main(argv)`` and prints its figures as
ratios against a baseline measured in the same run. ``python -m bench [NAME ...]`` runs them."""
