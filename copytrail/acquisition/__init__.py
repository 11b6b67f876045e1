"""Acquisition records: purchases and scans, declared purposes, and every use of a copy."""
