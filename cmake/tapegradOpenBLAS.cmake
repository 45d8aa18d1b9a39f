# Finds OpenBLAS (the CBLAS header and the library) and defines the imported target tapegrad::openblas.
# One script for both sides: tapegrad's own build includes it, and the installed tapegradConfig.cmake
# includes the installed copy, because the static tapegrad libraries link OpenBLAS privately and a
# consumer's link line needs it too. Sets TAPEGRAD_OPENBLAS_FOUND; never fails on its own.
if(TARGET tapegrad::openblas)
  set(TAPEGRAD_OPENBLAS_FOUND TRUE)
  return()
endif()
set(TAPEGRAD_OPENBLAS_FOUND FALSE)

# Debian ships OpenBLAS's CMake config file in its multiarch folder; otherwise CMake's FindBLAS.
find_package(OpenBLAS CONFIG QUIET
  PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-pthread/cmake/openblas)
if(OpenBLAS_FOUND)
  set(_tapegrad_cblas_include ${OpenBLAS_INCLUDE_DIRS})
  set(_tapegrad_blas_libraries ${OpenBLAS_LIBRARIES})
else()
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS QUIET)
  find_path(TAPEGRAD_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas openblas-pthread)
  if(BLAS_FOUND AND TAPEGRAD_CBLAS_INCLUDE)
    set(_tapegrad_cblas_include ${TAPEGRAD_CBLAS_INCLUDE})
    set(_tapegrad_blas_libraries BLAS::BLAS)
  endif()
endif()

if(_tapegrad_blas_libraries)
  add_library(tapegrad::openblas INTERFACE IMPORTED)
  set_target_properties(tapegrad::openblas PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_tapegrad_cblas_include}"
    INTERFACE_LINK_LIBRARIES "${_tapegrad_blas_libraries}")
  set(TAPEGRAD_OPENBLAS_FOUND TRUE)
endif()
unset(_tapegrad_cblas_include)
unset(_tapegrad_blas_libraries)
