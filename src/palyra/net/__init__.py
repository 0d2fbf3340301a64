"""Which upstream addresses and URLs Palyra accepts: pure rules shared by config and transport."""
