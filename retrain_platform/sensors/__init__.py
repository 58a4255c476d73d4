"""Sensors: cheap checks on a short interval that launch runs when something needs doing."""
