from recipes.char_lm.main import main

main()
