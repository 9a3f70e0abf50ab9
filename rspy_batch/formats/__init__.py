"""Binary and text file formats read or written by rspy-batch."""
