"""Models, one file per family member, written as their papers write them."""
