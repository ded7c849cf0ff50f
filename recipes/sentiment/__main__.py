from recipes.sentiment.main import main

main()
