from recipes.dna.main import main

main()
