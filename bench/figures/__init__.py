"""The figures of the bench, one module per group; each function returns table rows."""
