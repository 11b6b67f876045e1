"""How work is spread. Steps hand the engine a function and tasks; they never manage processes."""
