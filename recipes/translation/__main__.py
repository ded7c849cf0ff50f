from recipes.translation.main import main

main()
