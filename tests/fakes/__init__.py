"""Test doubles that speak real wire protocols, so code under test runs through the real SDKs."""
