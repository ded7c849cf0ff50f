from recipes.activity.main import main

main()
