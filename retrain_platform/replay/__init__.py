"""Replay a year of real traffic through the running platform on a simulated clock, and measure
how much the self-healing loop recovers against a static model and monthly-retrained oracles."""
