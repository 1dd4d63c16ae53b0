"""One module of endpoints per resource; `routes.ENDPOINT_MODULES` lists them."""
