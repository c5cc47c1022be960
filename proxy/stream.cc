// placeholder, replaced as the foundation lands
