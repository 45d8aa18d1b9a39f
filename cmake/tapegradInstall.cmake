# install(): the three libraries and the umbrella target tapegrad::tapegrad (export set tapegradTargets,
# namespace tapegrad::), the public headers, tapegrad/tapegrad.h and tapegrad/version.h under
# <prefix>/include/tapegrad, and the CMake package under <prefix>/lib/cmake/tapegrad. The internal headers
# (framework/kernels, framework/io/hdf5_handles.h) and tapegrad_build_flags are not installed.
include(CMakePackageConfigHelpers)
set(TAPEGRAD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)

set(TAPEGRAD_INSTALL_TARGETS tapegrad_framework tapegrad_layers tapegrad_optim tapegrad)
if(TARGET tapegrad_distributed)
  list(APPEND TAPEGRAD_INSTALL_TARGETS tapegrad_distributed)   # tapegrad::distributed, builds with MPI only
endif()
install(TARGETS ${TAPEGRAD_INSTALL_TARGETS}
  EXPORT tapegradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT tapegradTargets NAMESPACE tapegrad:: FILE tapegradTargets.cmake
  DESTINATION ${TAPEGRAD_INSTALL_CMAKEDIR})

foreach(header ${TAPEGRAD_PUBLIC_HEADERS})
  get_filename_component(dir ${header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/${header} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad/${dir})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/include/tapegrad/tapegrad.h ${TAPEGRAD_BUILD_INCLUDE}/tapegrad/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad)

# Static libraries put their private dependencies (HDF5, OpenBLAS) on the consumer's link line, so the
# package config must find them too; shared ones need only the public ones (TBB, Threads).
get_target_property(framework_type tapegrad_framework TYPE)
if(framework_type STREQUAL "STATIC_LIBRARY")
  set(TAPEGRAD_STATIC_LIBRARIES TRUE)
else()
  set(TAPEGRAD_STATIC_LIBRARIES FALSE)
endif()
# The HDF5 C libraries tapegrad was built against, for tapegrad::hdf5 in the package config.
string(REPLACE ";" "\" \"" TAPEGRAD_HDF5_LIBRARIES "\"${HDF5_C_LIBRARIES}\"")
# Likewise the MPI C libraries, for tapegrad::mpi (static tapegrad::distributed links them privately).
string(REPLACE ";" "\" \"" TAPEGRAD_MPI_LIBRARIES "\"${MPI_C_LIBRARIES}\"")
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tapegradConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tapegradConfig.cmake INSTALL_DESTINATION ${TAPEGRAD_INSTALL_CMAKEDIR})
# 0.x: 0.2.* is compatible with a request for 0.2, not 0.1 or 0.3.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tapegradConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tapegradConfig.cmake ${PROJECT_BINARY_DIR}/tapegradConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/tapegradOpenBLAS.cmake
  DESTINATION ${TAPEGRAD_INSTALL_CMAKEDIR})
