"""Generic graph pieces shared by task families: negative sampling, neighbour sampling, line graphs."""
