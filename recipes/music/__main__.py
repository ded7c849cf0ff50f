from recipes.music.main import main

main()
