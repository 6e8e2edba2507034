"""One parser per corpus format; each returns papers plus the entries it had to skip."""
