"""Plumbing shared by the services: bus connection, topology, workers, local servers."""
