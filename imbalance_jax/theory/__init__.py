"""Closed forms from papers H, S and R, each with a simulator it is tested against."""
