"""Typer apps and console-script shims: parse, call one function of the layer below, render."""
