from recipes.protein.main import main

main()
