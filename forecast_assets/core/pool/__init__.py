"""The pool of forecasters judged on the same rolling-origin folds and chosen per SKU."""
