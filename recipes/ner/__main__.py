from recipes.ner.main import main

main()
