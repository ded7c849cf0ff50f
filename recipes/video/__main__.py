from recipes.video.main import main

main()
