/** `tsx-loader.mjs`: imported for its effect (tsx's loaders registered in this process); exports nothing. */
export {};
