"""Membership methods: the method protocol and registry, features, K-Means, DEC, the thesis
method, the default method and HDBSCAN."""
