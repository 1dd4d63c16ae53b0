"""Engine-free code shared by the commands and ds01d: recipes, the catalogue, the build context."""
